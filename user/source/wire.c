#include "wire.h"
#include <bpf/bpf.h>
#include <errno.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "loader.h"
#include "synfin.h"
#include "wire.skel.h"

/* tcx attach points (kernel 6.6); not in the uapi headers libbpf 1.1 ships with. */
#define SF_BPF_TCX_EGRESS 47
/* Our clsact filter's handle and priority, so we detach ours and only ours. */
#define TC_HANDLE 0x5f4e
#define TC_PRIORITY 0x5f4e

static int attach_xdp(struct wire *w, struct wire_iface *i)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	/* Generic (skb) mode: it works on every interface, lo and veth included. */
	LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = XDP_FLAGS_SKB_MODE);
	int err = bpf_xdp_query(i->ifindex, 0, &q);

	if (!err && (q.prog_id || q.skb_prog_id || q.drv_prog_id || q.hw_prog_id)) {
		fprintf(stderr, "synfin: %s already has an XDP program (id %u); synfin will not "
				"replace it\n", i->name,
			q.prog_id ?: q.skb_prog_id ?: q.drv_prog_id ?: q.hw_prog_id);
		return -EBUSY;
	}
	i->xdp_link = bpf_link_create(bpf_program__fd(w->skel->progs.wire_in), i->ifindex, BPF_XDP, &lo);
	if (i->xdp_link < 0) {
		err = -errno;
		fprintf(stderr, "synfin: cannot attach XDP to %s: %s%s\n", i->name, strerror(-err),
			err == -EBUSY ? " (another XDP program is attached)" : "");
		return err;
	}
	return 0;
}

/* clsact + a filter of our own, for kernels without tcx links. */
static int attach_clsact(struct wire *w, struct wire_iface *i)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = i->ifindex, .attach_point = BPF_TC_EGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = TC_HANDLE, .priority = TC_PRIORITY,
		    .prog_fd = bpf_program__fd(w->skel->progs.wire_out));
	int err = bpf_tc_hook_create(&hook);

	if (err && err != -EEXIST) {
		fprintf(stderr, "synfin: cannot create clsact on %s: %s\n", i->name, strerror(-err));
		return err;
	}
	i->clsact_created = !err;
	err = bpf_tc_attach(&hook, &opts);
	if (err) {
		fprintf(stderr, "synfin: cannot attach TC egress to %s: %s%s\n", i->name,
			strerror(-err), err == -EEXIST ? " (is another synfin watching it?)" : "");
		return err;
	}
	i->tc_filter = true;
	return 0;
}

static int attach_tc(struct wire *w, struct wire_iface *i)
{
	int err;

	if (!w->tcx)
		return attach_clsact(w, i);
	/* A tcx link goes away with its last fd, like the XDP link: kill -9 leaves nothing. */
	i->tcx_link = bpf_link_create(bpf_program__fd(w->skel->progs.wire_out), i->ifindex,
				      SF_BPF_TCX_EGRESS, NULL);
	if (i->tcx_link >= 0)
		return 0;
	err = errno;
	fprintf(stderr, "synfin: cannot attach a tcx egress link to %s: %s\n", i->name,
		strerror(err));
	return -err;
}

static void detach_iface(struct wire_iface *i)
{
	if (i->xdp_link >= 0)
		close(i->xdp_link);
	if (i->tcx_link >= 0)
		close(i->tcx_link);
	if (i->tc_filter) {
		LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = i->ifindex, .attach_point = BPF_TC_EGRESS);
		LIBBPF_OPTS(bpf_tc_opts, opts, .handle = TC_HANDLE, .priority = TC_PRIORITY);

		bpf_tc_detach(&hook, &opts);
		if (i->clsact_created) {
			hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
			bpf_tc_hook_destroy(&hook);
		}
	}
	i->xdp_link = i->tcx_link = -1;
	i->tc_filter = false;
}

static int resolve_ifaces(struct wire *w, const struct options *o)
{
	for (int n = 0; n < o->nifaces; n++) {
		struct wire_iface *i = &w->ifs[n];

		snprintf(i->name, sizeof(i->name), "%s", o->ifaces[n]);
		i->ifindex = (int)if_nametoindex(o->ifaces[n]);
		i->xdp_link = i->tcx_link = -1;
		if (!i->ifindex) {
			fprintf(stderr, "synfin: no such interface '%s' (see ip link)\n", o->ifaces[n]);
			return 1;
		}
	}
	w->nifs = o->nifaces;
	return 0;
}

static int load(struct wire *w, const struct options *o)
{
	int err;

	w->skel = wire_bpf__open();
	if (!w->skel) {
		fprintf(stderr, "synfin: failed to open the packet layer: %s\n", strerror(errno));
		return 1;
	}
	w->skel->rodata->all_segments = o->all_segments;
	w->skel->rodata->filter_port = o->port;
	w->skel->rodata->filter_family = o->family;
	w->skel->rodata->wakeup_bytes = o->ringbuf_bytes / 4;
	err = bpf_map__set_max_entries(w->skel->maps.segments, (__u32)o->ringbuf_bytes);
	if (!err)
		err = wire_bpf__load(w->skel);
	if (err) {
		fprintf(stderr, "synfin: failed to load the packet layer: %s (run with -v for the "
				"verifier's log)\n", strerror(-err));
		return 1;
	}
	return 0;
}

int wire_start(struct wire *w, const struct options *o, bool tcx, struct ring_buffer *rb,
	       ring_buffer_sample_fn on_segment, void *ctx)
{
	w->tcx = tcx;
	if (resolve_ifaces(w, o) || load(w, o))
		goto fail;
	for (int n = 0; n < w->nifs; n++)
		if (attach_xdp(w, &w->ifs[n]) || attach_tc(w, &w->ifs[n]))
			goto fail;
	if (ring_buffer__add(rb, bpf_map__fd(w->skel->maps.segments), on_segment, ctx)) {
		fprintf(stderr, "synfin: failed to read the packet layer's ring: %s\n", strerror(errno));
		goto fail;
	}
	return 0;
fail:
	wire_stop(w);
	return 1;
}

void wire_stop(struct wire *w)
{
	for (int n = 0; n < w->nifs; n++)
		detach_iface(&w->ifs[n]);
	w->nifs = 0;
	wire_bpf__destroy(w->skel);
	w->skel = NULL;
}

void wire_report(const struct wire *w)
{
	uint64_t n[SF_SEG_MAX];

	if (!w->skel || percpu_array_sum(bpf_map__fd(w->skel->maps.seg_counters), SF_SEG_MAX, n))
		return;
	fprintf(stderr, "synfin: packet layer: %llu TCP segments (%llu SYN, %llu SYN-ACK, %llu FIN, "
			"%llu RST), %llu malformed, %llu reported, %llu lost\n",
		(unsigned long long)n[SF_SEG_SEEN], (unsigned long long)n[SF_SEG_SYN],
		(unsigned long long)n[SF_SEG_SYNACK], (unsigned long long)n[SF_SEG_FIN],
		(unsigned long long)n[SF_SEG_RST], (unsigned long long)n[SF_SEG_MALFORMED],
		(unsigned long long)n[SF_SEG_EMITTED], (unsigned long long)n[SF_SEG_LOST]);
}

const char *wire_ifname(const struct wire *w, unsigned ifindex)
{
	for (int n = 0; n < w->nifs; n++)
		if ((unsigned)w->ifs[n].ifindex == ifindex)
			return w->ifs[n].name;
	return "?";
}
