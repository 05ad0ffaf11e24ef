/// Benchmarks for this capability are added as it lands.
let processBenchmarks: [Benchmark] = []
