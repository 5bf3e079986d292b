"""The officers' screening service: FastAPI app, accounts, storage, audit trail and web page."""
