/* An XDP dispatcher, the way datapaths split into stages that can be replaced one at a time:
 * `dispatch` reads the EtherType and tail-calls the handler for it through the PROG_ARRAY
 * `handlers`, whose slots the loader fills from the object itself (libbpf's static
 * initialisation of program arrays, `.values = { [SLOT] = (void *)&prog }`). A frame no
 * handler takes (ARP's slot is left empty, other types have none) falls through and passes.
 * Every program counts what it saw in `seen`, so the maps say which ran. Written for this
 * project.
 */
#include "mimic_bpf.h"

#define ETH_P_ARP 0x0806
#define ETH_P_IPV6 0x86dd

enum { SLOT_IPV4, SLOT_IPV6, SLOT_ARP, SLOTS };

/* seen[slot]: frames each handler took; seen[SLOTS]: frames that fell through. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS + 1);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

int handle_ipv4(struct xdp_md *ctx);
int handle_ipv6(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__array(values, int (void *));
} handlers SEC(".maps") = {
	.values = {
		[SLOT_IPV4] = (void *)&handle_ipv4,
		[SLOT_IPV6] = (void *)&handle_ipv6,
	},
};

static __always_inline void count(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&seen, &slot);

	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("xdp")
int dispatch(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 slot;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	if (eth->h_proto == BE16(ETH_P_IP))
		slot = SLOT_IPV4;
	else if (eth->h_proto == BE16(ETH_P_IPV6))
		slot = SLOT_IPV6;
	else if (eth->h_proto == BE16(ETH_P_ARP))
		slot = SLOT_ARP;
	else
		slot = SLOTS;
	bpf_tail_call(ctx, &handlers, slot);
	count(SLOTS);
	return XDP_PASS;
}

SEC("xdp")
int handle_ipv4(struct xdp_md *ctx)
{
	count(SLOT_IPV4);
	return XDP_TX;
}

SEC("xdp")
int handle_ipv6(struct xdp_md *ctx)
{
	count(SLOT_IPV6);
	return XDP_DROP;
}
