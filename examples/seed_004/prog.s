# handle__sys_enter of seed 004 (4a8f87e60f6d): look up outer_arr_dyn[0], then inner[0].
# int key = 0;
mov32 %r1, 0
stxw [%r10-4], %r1
mov %r2, %r10
add %r2, -4
# inner_map = bpf_map_lookup_elem(&outer_arr_dyn, &key);
lddw %r1, map:outer_arr_dyn
call 1
mov32 %r6, -1
# if (!inner_map) return -1;
jeq %r0, 0, out
mov %r2, %r10
add %r2, -4
# val = bpf_map_lookup_elem(inner_map, &key);
mov %r1, %r0
call 1
# return val ? *val : -1;
jeq %r0, 0, out
ldxw %r6, [%r0+0]
out:
mov32 %r0, %r6
exit
