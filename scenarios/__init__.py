"""Client-side flows over HTTP against a running stack (sign in, link a bank, create and await
payouts), shared by the end-to-end tests, the demo, the benchmarks and the reliability suite."""
