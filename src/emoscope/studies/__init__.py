"""Ad-test studies: an ad, a link viewers open in their own browser, and every viewer's reactions
kept in a SQL database (SQLite by default, PostgreSQL by URL), synchronised to the ad by
construction. This subpackage owns the schema (`schema`), its versioned migrations (Alembic,
`migrations/`) and the queries (`store`); the report reuses the campaign statistics and report
(`emoscope.batch.campaign`). The server's routes are in `emoscope.serve.routes.studies`; the
command line is `emoscope study`. Nothing is imported here: `emoscope --help` must work without
SQLAlchemy (the `serve` extra); use `emoscope.studies.store`."""
