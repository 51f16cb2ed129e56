//! The §9 kernel selftest scenarios that need no programs (`mimic_core::model::selftests`), run
//! against the reference model, with the model's own audit checked after each (no map alive at
//! quiescence, every refcnt explained), and against a deliberately leaky model to prove the
//! scenarios' leak checks can fail.

use mimic_core::fault::Error;
use mimic_core::model::selftests::{self, all};
use mimic_core::model::RefModel;
use mimic_core::uapi::{BatchOut, BpfSys, Fd, MapAttr, MapId, MapInfo, MapType};

#[test]
fn selftest_scenarios_pass_on_the_model_and_leave_nothing_alive() {
    for (name, scenario) in all::<RefModel>() {
        let mut model = RefModel::new();
        if let Err(e) = scenario(&mut model) {
            panic!("{name}: {e}");
        }
        if let Err(fault) = model.check_quiescent() {
            panic!("{name}: {fault}\naudit: {:#?}", model.audit());
        }
        assert!(!model.freed_ids().is_empty(), "{name}: freed nothing");
    }
}

#[test]
fn selftest_scenarios_pass_on_the_world_and_leave_nothing_alive() {
    use mimic_core::mutants::Mutants;
    use mimic_core::sync::Std;
    use mimic_core::sys::Process;
    use mimic_core::world::WorldConfig;
    for (name, scenario) in all::<Process<Std>>() {
        let mut world = Process::<Std>::create(Mutants::NONE, WorldConfig::default());
        if let Err(e) = scenario(&mut world) {
            panic!("{name} on the world: {e}");
        }
        let open = world.world().open_fds();
        assert!(
            open.is_empty(),
            "{name}: fds {open:?} left open on the world"
        );
    }
}

#[test]
fn map_in_map_batch_ops_frees_every_inner_map_exactly_once() {
    let mut model = RefModel::new();
    selftests::map_in_map_batch_ops(&mut model, MapType::Hash, MapType::HashOfMaps).unwrap();
    let mut freed = model.freed_ids().to_vec();
    let count = freed.len();
    freed.sort();
    freed.dedup();
    assert_eq!(
        freed.len(),
        count,
        "a map was freed twice: {:?}",
        model.freed_ids()
    );
    assert_eq!(count, 11, "10 inner maps and the outer map must be freed");
}

#[test]
fn dynamic_inner_arrays_keep_their_own_max_entries() {
    let mut model = RefModel::new();
    let template = model
        .map_create(&MapAttr::new(MapType::Array, 4, 4, 1).flags(1 << 12))
        .unwrap();
    let outer = model
        .map_create(&MapAttr::new(MapType::ArrayOfMaps, 4, 4, 1).inner(template))
        .unwrap();
    let inner = model
        .map_create(&MapAttr::new(MapType::Array, 4, 4, 5).flags(1 << 12))
        .unwrap();
    model
        .map_update_elem(outer, &0u32.to_ne_bytes(), &inner.to_ne_bytes(), 0)
        .unwrap();
    let audit = model.audit();
    let stored = audit
        .iter()
        .find(|m| m.fds == vec![inner])
        .expect("the inner map is alive");
    assert_eq!(
        stored.shape.max_entries, 5,
        "the inner array keeps 5 entries, not the template's 1"
    );
    let meta = audit
        .iter()
        .find(|m| m.fds == vec![outer])
        .and_then(|m| m.meta)
        .expect("outer has a meta");
    assert_eq!(
        (meta.shape.max_entries, meta.index_mask),
        (1, Some(0)),
        "the meta is the template's shape"
    );
}

/// A model whose `close` forgets to drop the map: every leak check must catch it.
struct LeakyClose(RefModel);

impl BpfSys for LeakyClose {
    fn map_create(&mut self, attr: &MapAttr) -> Result<Fd, Error> {
        self.0.map_create(attr)
    }
    fn map_lookup_elem(&mut self, fd: Fd, key: &[u8]) -> Result<Vec<u8>, Error> {
        self.0.map_lookup_elem(fd, key)
    }
    fn map_update_elem(
        &mut self,
        fd: Fd,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Error> {
        self.0.map_update_elem(fd, key, value, flags)
    }
    fn map_delete_elem(&mut self, fd: Fd, key: &[u8]) -> Result<(), Error> {
        self.0.map_delete_elem(fd, key)
    }
    fn map_lookup_and_delete_elem(&mut self, fd: Fd, key: &[u8]) -> Result<Vec<u8>, Error> {
        self.0.map_lookup_and_delete_elem(fd, key)
    }
    fn map_get_next_key(&mut self, fd: Fd, key: Option<&[u8]>) -> Result<Vec<u8>, Error> {
        self.0.map_get_next_key(fd, key)
    }
    fn map_lookup_batch(
        &mut self,
        fd: Fd,
        in_batch: Option<u32>,
        count: u32,
    ) -> Result<BatchOut, Error> {
        self.0.map_lookup_batch(fd, in_batch, count)
    }
    fn map_lookup_and_delete_batch(
        &mut self,
        fd: Fd,
        in_batch: Option<u32>,
        count: u32,
    ) -> Result<BatchOut, Error> {
        self.0.map_lookup_and_delete_batch(fd, in_batch, count)
    }
    fn map_update_batch(
        &mut self,
        fd: Fd,
        keys: &[Vec<u8>],
        values: &[Vec<u8>],
        flags: u64,
    ) -> Result<u32, (u32, Error)> {
        self.0.map_update_batch(fd, keys, values, flags)
    }
    fn map_delete_batch(&mut self, fd: Fd, keys: &[Vec<u8>]) -> Result<u32, (u32, Error)> {
        self.0.map_delete_batch(fd, keys)
    }
    fn map_get_fd_by_id(&mut self, id: MapId) -> Result<Fd, Error> {
        self.0.map_get_fd_by_id(id)
    }
    fn map_info(&mut self, fd: Fd) -> Result<MapInfo, Error> {
        self.0.map_info(fd)
    }
    fn map_freeze(&mut self, fd: Fd) -> Result<(), Error> {
        self.0.map_freeze(fd)
    }
    fn close(&mut self, fd: Fd) -> Result<(), Error> {
        // Pretend to close: the fd (and its reference) stays.
        self.0.map_info(fd).map(|_| ())
    }
}

#[test]
fn a_close_that_leaks_fails_every_scenario() {
    for (name, scenario) in all::<LeakyClose>() {
        let result = scenario(&mut LeakyClose(RefModel::new()));
        let err = result.expect_err(&format!("{name} passed on a model whose close leaks"));
        assert!(
            err.contains("leak") || err.contains("still resolves"),
            "{name} failed for another reason: {err}"
        );
    }
}
