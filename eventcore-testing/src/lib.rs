//! Given / when / then fixtures for eventcore (being written).
