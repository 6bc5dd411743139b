"""gRPC servicers and interceptors: proto <-> domain. Never imports torch, transformers or hdbscan."""
