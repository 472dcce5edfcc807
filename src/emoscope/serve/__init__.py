"""REST/WebSocket service and web page (FastAPI), on the torch-free inference side."""
