"""`seq2seq serve`: SavedModels behind TF Serving's REST and gRPC interfaces.

- `config`: the model config and batching parameters files (TF Serving's formats).
- `servables`: loaded versions, and the manager that polls base paths for new ones.
- `batching`: running requests, one by one or merged into batches.
- `messages`: TF Serving's protos and JSON tensors, shared by both fronts.
- `rest`, `grpc_service`: the two fronts; `server`: the command.
"""
