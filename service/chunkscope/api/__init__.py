"""gRPC servicers and interceptors: proto <-> domain. Never imports torch or hdbscan."""
