"""The gRPC wing: the proxy server in front of a database (:mod:`.server`, with its trial
cache :mod:`.proxy_cache`), its client (:mod:`.client`) and a worker's client that keeps a
trial's writes (:mod:`.worker_client`), and what they share without grpcio
(:mod:`.common`). Importing this package imports no grpc; its modules but ``common`` do.
Private: ``storage`` re-exports what callers need."""
