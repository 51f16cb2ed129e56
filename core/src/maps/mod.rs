//! Maps. (Placeholder holding only the inlined-lookup emitters until the maps land.)

pub mod gen_lookup;
