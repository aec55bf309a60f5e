"""Infrastructure shared by every MiniMall service: config, logging, db, outbox, consumers, gRPC, metrics."""
