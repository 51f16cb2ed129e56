//! Concurrent scenarios of the map-in-map core, each written once over `Platform` and run under
//! loom and shuttle. Filled in by the models work; the crate exists so the layout is fixed.
