//! `mimic`: the command-line front of the simulator. Filled in as the simulator lands.
fn main() {
    println!("mimic {}", env!("CARGO_PKG_VERSION"));
}
