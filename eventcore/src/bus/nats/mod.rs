//! NATS JetStream transport (placeholder until written).
