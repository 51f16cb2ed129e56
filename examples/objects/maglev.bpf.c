/* A Maglev load balancer in XDP, written the way a load-balancer team writes one (seed 004's
 * use case):
 *
 * - services is a hash of maps from a service id to that service's backend table, a
 *   BPF_F_INNER_MAP array whose size is the service's own (3 and 5 here; the control plane
 *   swaps in tables of other sizes with BPF_MAP_UPDATE_ELEM on the outer map);
 * - table_size[] says how many slots of a service's table are in use;
 * - vips[] (read-only configuration) maps a virtual IP, port and protocol to a service id.
 *
 * A frame is parsed (Ethernet, IPv4 with options, TCP or UDP), each header bounds-checked
 * against data_end before it is read. Traffic to no service passes; a service without a table,
 * an empty table or a missing slot drops; otherwise the 5-tuple's hash picks a slot, the
 * destination address becomes the backend's (10.1.0.<id>, checksum updated incrementally)
 * and the frame goes back out (XDP_TX).
 *
 * maglev_fixed is the same balancer as teams wrote it before dynamic inner arrays (kernel 5.10):
 * services_fixed's template is a plain array of FIXED_SLOTS, so every table has exactly that
 * many slots, the verifier inlines the lookup in the table with that bound, and the kernel
 * refuses (-EINVAL) a table of any other size. Every service pays for the largest table.
 *
 * maglev_tc is the dynamic balancer as a tc (sched_cls) program, reading struct __sk_buff;
 * maglev_tc_nat the same rewriting through the checksum and store helpers instead.
 */
#include "mimic_bpf.h"

#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define MAX_SERVICES 4
#define NUM_VIPS 3
#define FIXED_SLOTS 8

/* The fields of struct __sk_buff (uapi) up to data_end, which is all maglev_tc reads. */
struct __sk_buff {
	__u32 len;
	__u32 pkt_type;
	__u32 mark;
	__u32 queue_mapping;
	__u32 protocol;
	__u32 vlan_present;
	__u32 vlan_tci;
	__u32 vlan_proto;
	__u32 priority;
	__u32 ingress_ifindex;
	__u32 ifindex;
	__u32 tc_index;
	__u32 cb[5];
	__u32 hash;
	__u32 tc_classid;
	__u32 data;
	__u32 data_end;
};

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

/* Offsets in a frame: the IPv4 header's checksum and destination, and the checksum in a TCP
 * or UDP header. */
#define ETH_HLEN 14
#define IP_CHECK (ETH_HLEN + 10)
#define IP_DADDR (ETH_HLEN + 16)
#define TCP_CHECK 16
#define UDP_CHECK 6

struct iphdr {
	__u8 ihl_version;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u32 saddr;
	__u32 daddr;
};

/* The ports of TCP and UDP headers. */
struct ports {
	__u16 source;
	__u16 dest;
};

struct vip {
	__u32 addr; /* network order */
	__u16 port; /* network order */
	__u8 protocol;
	__u8 service;
};

#define BE32(a, b, c, d) ((__u32)(a) | (__u32)(b) << 8 | (__u32)(c) << 16 | (__u32)(d) << 24)

const volatile struct vip vips[NUM_VIPS] = {
	{ BE32(10, 0, 0, 1), BE16(80), IPPROTO_TCP, 1 },
	{ BE32(10, 0, 0, 1), BE16(53), IPPROTO_UDP, 2 },
	{ BE32(10, 0, 0, 2), BE16(443), IPPROTO_TCP, 3 },
};

__u32 table_size[MAX_SERVICES] = { 0, 5, 3, 0 };

struct backend_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 5);
	__type(key, __u32);
	__type(value, __u32);
} backends_web SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u32);
} backends_dns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u32);
	__array(values, struct backend_table);
} services SEC(".maps") = {
	.values = { [1] = (void *)&backends_web, [2] = (void *)&backends_dns },
};

struct fixed_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FIXED_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FIXED_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} fixed_web SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u32);
	__array(values, struct fixed_table);
} services_fixed SEC(".maps") = {
	.values = { [1] = (void *)&fixed_web },
};

/* A 5-tuple hash (mixing as in a multiply-xorshift finaliser). */
static __always_inline __u32 flow_hash(__u32 saddr, __u32 daddr, __u32 ports, __u32 proto)
{
	__u64 h = (__u64)saddr * 0x9e3779b1u;

	h ^= (h >> 29) ^ daddr;
	h *= 0xbf58476du;
	h ^= (h >> 31) ^ ports;
	h *= 0x94d049bbu;
	h ^= (h >> 27) ^ proto;
	return (__u32)(h ^ (h >> 32));
}

/* One's-complement update of the IPv4 checksum for a changed 32-bit field (RFC 1624). */
static __always_inline __u16 csum_replace4(__u16 check, __u32 from, __u32 to)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~from + (__u16)~(from >> 16);
	sum += (__u16)to + (__u16)(to >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* The IPv4 header of a TCP or UDP frame to a service, with the service and the flow's hash;
 * NULL for anything else (which passes). */
static __always_inline struct iphdr *classify(void *data, void *data_end, __u32 *service,
					     __u32 *hash)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct ports *ports;
	__u32 ihl;
	int i;

	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->h_proto != BE16(ETH_P_IP))
		return 0;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return 0;
	ihl = ip->ihl_version & 0xf;
	if (ihl < 5)
		return 0;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return 0;
	ports = (void *)ip + ihl * 4;
	if ((void *)(ports + 1) > data_end)
		return 0;

	*service = 0;
	for (i = 0; i < NUM_VIPS; i++) {
		if (vips[i].addr == ip->daddr && vips[i].port == ports->dest &&
		    vips[i].protocol == ip->protocol) {
			*service = vips[i].service;
			break;
		}
	}
	if (!*service)
		return 0;
	*hash = flow_hash(ip->saddr, ip->daddr, *(__u32 *)ports, ip->protocol);
	return ip;
}

/* Rewrites the destination to backend 10.1.0.<id> (checksum updated incrementally). */
static __always_inline void steer(struct iphdr *ip, __u32 backend)
{
	__u32 to = BE32(10, 1, 0, 0) | (backend & 0xff) << 24;

	ip->check = csum_replace4(ip->check, ip->daddr, to);
	ip->daddr = to;
}

SEC("xdp")
int maglev(struct xdp_md *ctx)
{
	__u32 service, hash, slot, size, *backend;
	struct iphdr *ip;
	void *table;

	ip = classify((void *)(long)ctx->data, (void *)(long)ctx->data_end, &service, &hash);
	if (!ip)
		return XDP_PASS;
	table = bpf_map_lookup_elem(&services, &service);
	if (!table)
		return XDP_DROP;
	size = table_size[service & (MAX_SERVICES - 1)];
	if (!size)
		return XDP_DROP;
	slot = hash % size;
	backend = bpf_map_lookup_elem(table, &slot);
	if (!backend)
		return XDP_DROP;
	steer(ip, *backend);
	return XDP_TX;
}

SEC("xdp")
int maglev_fixed(struct xdp_md *ctx)
{
	__u32 service, hash, slot, *backend;
	struct iphdr *ip;
	void *table;

	ip = classify((void *)(long)ctx->data, (void *)(long)ctx->data_end, &service, &hash);
	if (!ip)
		return XDP_PASS;
	table = bpf_map_lookup_elem(&services_fixed, &service);
	if (!table)
		return XDP_DROP;
	slot = hash % FIXED_SLOTS;
	backend = bpf_map_lookup_elem(table, &slot);
	if (!backend)
		return XDP_DROP;
	steer(ip, *backend);
	return XDP_TX;
}

/* The same balancer at tc ingress (sched_cls), for hosts that steer after the stack has built
 * the sk_buff: the frame comes through struct __sk_buff, and a steered frame leaves through
 * the device it came in on (bpf_redirect gives TC_ACT_REDIRECT). Writing the packet makes the
 * kernel put its unclone prologue before the program. */
SEC("tc")
int maglev_tc(struct __sk_buff *skb)
{
	__u32 service, hash, slot, size, *backend;
	struct iphdr *ip;
	void *table;

	ip = classify((void *)(long)skb->data, (void *)(long)skb->data_end, &service, &hash);
	if (!ip)
		return TC_ACT_OK;
	table = bpf_map_lookup_elem(&services, &service);
	if (!table)
		return TC_ACT_SHOT;
	size = table_size[service & (MAX_SERVICES - 1)];
	if (!size)
		return TC_ACT_SHOT;
	slot = hash % size;
	backend = bpf_map_lookup_elem(table, &slot);
	if (!backend)
		return TC_ACT_SHOT;
	steer(ip, *backend);
	skb->mark = *backend;
	return bpf_redirect(skb->ifindex, 0);
}

/* The tc balancer rewriting through helpers, as a NAT datapath does: the TCP or UDP checksum
 * (it covers the destination through the pseudo-header) with bpf_l4_csum_replace, the IPv4
 * checksum with bpf_l3_csum_replace, then the address with bpf_skb_store_bytes. It writes no
 * packet byte directly, so the kernel puts no unclone prologue before it. */
SEC("tc")
int maglev_tc_nat(struct __sk_buff *skb)
{
	__u32 service, hash, slot, size, *backend, from, to, l4_check, flags, id;
	struct iphdr *ip;
	void *table;
	__u8 proto;

	ip = classify((void *)(long)skb->data, (void *)(long)skb->data_end, &service, &hash);
	if (!ip)
		return TC_ACT_OK;
	from = ip->daddr;
	proto = ip->protocol;
	l4_check = ETH_HLEN + (ip->ihl_version & 0xf) * 4;
	table = bpf_map_lookup_elem(&services, &service);
	if (!table)
		return TC_ACT_SHOT;
	size = table_size[service & (MAX_SERVICES - 1)];
	if (!size)
		return TC_ACT_SHOT;
	slot = hash % size;
	backend = bpf_map_lookup_elem(table, &slot);
	if (!backend)
		return TC_ACT_SHOT;
	id = *backend;
	to = BE32(10, 1, 0, 0) | (id & 0xff) << 24;
	if (proto == IPPROTO_TCP) {
		l4_check += TCP_CHECK;
		flags = BPF_F_PSEUDO_HDR | sizeof(to);
	} else {
		l4_check += UDP_CHECK;
		flags = BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | sizeof(to);
	}
	if (bpf_l4_csum_replace(skb, l4_check, from, to, flags))
		return TC_ACT_SHOT;
	if (bpf_l3_csum_replace(skb, IP_CHECK, from, to, sizeof(to)))
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, IP_DADDR, &to, sizeof(to), 0))
		return TC_ACT_SHOT;
	skb->mark = id;
	return bpf_redirect(skb->ifindex, 0);
}

char _license[] SEC("license") = "GPL";
