/// Benchmarks for this capability are added as it lands.
let coordinationBenchmarks: [Benchmark] = []
