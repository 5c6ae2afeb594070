fn main() {
    let spec = flimgru::data::SimSpec::default();
    for bits in [8, 16] {
        let m = flimgru::bench::golden_throughput(&spec, 32, bits, 20000).unwrap();
        println!("{} {:.0} {} ({:.1} GMAC/s)", m.what, m.value, m.unit, m.gflops.unwrap());
    }
}
