# A hash-of-maps reader in the spirit of seed 000 (bpf: Add hash of maps support):
# inner = outer_hash[key]; if present, atomically count in inner[2] and return the count.
# u32 key = 0;
mov32 %r1, 0
stxw [%r10-4], %r1
mov %r2, %r10
add %r2, -4
lddw %r1, map:outer_hash
call 1
# if (!inner) return 0;
mov %r6, 0
jeq %r0, 0, out
# u32 idx = 2; v = bpf_map_lookup_elem(inner, &idx);  (constant key in bounds: never NULL)
stw [%r10-8], 2
mov %r2, %r10
add %r2, -8
mov %r1, %r0
call 1
# __sync_fetch_and_add(v, 1); return *v;
mov %r1, 1
lock add32 [%r0+0], %r1
ldxw %r6, [%r0+0]
out:
mov %r0, %r6
exit
