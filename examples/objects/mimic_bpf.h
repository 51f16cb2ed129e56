/* The few definitions the example objects need, written for this project (no libbpf headers):
 * libbpf's map-definition conventions (a struct in SEC(".maps") whose members encode the
 * attributes as BTF), the helper calls by their numbers, and the map types and flags by
 * their uapi values. Build: clang -O2 -g -target bpf -c NAME.bpf.c -o NAME.bpf.o
 */
#ifndef MIMIC_BPF_H
#define MIMIC_BPF_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))
#define __always_inline inline __attribute__((always_inline))
#define __noinline __attribute__((noinline))

/* A map attribute N: a pointer to an array of N ints (BTF keeps N). */
#define __uint(name, val) int (*name)[val]
/* A key or value type: a pointer to it (BTF keeps its size). */
#define __type(name, val) typeof(val) *name
/* A map-in-map's template and initial slots: an array of pointers to the inner definition; a
 * PROG_ARRAY's initial slots: an array of pointers to functions (the programs). */
#define __array(name, val) typeof(val) *name[]

/* enum bpf_map_type */
#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PROG_ARRAY 3
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_ARRAY_OF_MAPS 12
#define BPF_MAP_TYPE_HASH_OF_MAPS 13

/* map_flags */
#define BPF_F_NO_PREALLOC (1U << 0)
#define BPF_F_INNER_MAP (1U << 12)

/* bpf_l4_csum_replace flags (the low 4 bits: the field's size) */
#define BPF_F_PSEUDO_HDR (1ULL << 4)
#define BPF_F_MARK_MANGLED_0 (1ULL << 5)

/* update flags */
#define BPF_ANY 0

/* XDP programs: the context (uapi struct xdp_md), the verdicts, and Ethernet. */
struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

#define XDP_DROP 1
#define XDP_PASS 2
#define XDP_TX 3

struct ethhdr {
	__u8 h_dest[6];
	__u8 h_source[6];
	__u16 h_proto;
};

#define ETH_P_IP 0x0800
/* A 16-bit constant in network order (the examples build for little-endian BPF). */
#define BE16(x) ((__u16)((((x) & 0xff) << 8) | (((x) >> 8) & 0xff)))

/* Helpers by their numbers in enum bpf_func_id. */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value,
                                   __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static long (*bpf_skb_store_bytes)(void *skb, __u32 offset, const void *from, __u32 len,
                                   __u64 flags) = (void *)9;
static long (*bpf_l3_csum_replace)(void *skb, __u32 offset, __u64 from, __u64 to,
                                   __u64 flags) = (void *)10;
static long (*bpf_l4_csum_replace)(void *skb, __u32 offset, __u64 from, __u64 to,
                                   __u64 flags) = (void *)11;
static long (*bpf_tail_call)(void *ctx, void *prog_array, __u32 index) = (void *)12;
static long (*bpf_redirect)(__u32 ifindex, __u64 flags) = (void *)23;
static void *(*bpf_map_lookup_percpu_elem)(void *map, const void *key, __u32 cpu) = (void *)195;

#endif
