"""The V2 gRPC service's messages and stubs, generated from `grpc_predict_v2.proto` by
`make proto` (grpcio-tools); never edited by hand."""
