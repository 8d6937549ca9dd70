"""Things other systems call or feed: the Label Studio ML-backend server, production ingest."""
