//! Domain core of custos. No I/O, no clock, no randomness of its own.
