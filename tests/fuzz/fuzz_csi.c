/*
 * irsafs-csi's input parsers, which run as root on every node: the CSI
 * requests (protobuf-c decoding and every check of csi/service.c, for each
 * method: the first byte picks it), and, with the first byte's top bit set,
 * the handoff message `irsafs serve` parses (core/handoff.c, through a
 * socketpair). Publishing and unpublishing are stubbed: the fuzzer must never
 * mount, unmount or remove anything.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/handoff.h"
#include "core/log.h"
#include "csi/service.h"
#include "csi/volume.h"

int volumes_publish(struct volumes *vs, const struct volume_spec *s, char *msg, size_t len)
{
	/* Touch what the checks let through, so the sanitizers see it. */
	return strlen(s->volume_id) + strlen(s->target_path) + strlen(s->bucket) +
		       strlen(s->prefix) + strlen(s->pod_uid) + strlen(s->fs_type) ?
		       GRPC_OK : GRPC_INTERNAL;
}

int volumes_unpublish(struct volumes *vs, const char *volume_id, const char *target, char *msg,
		      size_t len)
{
	return strlen(volume_id) + strlen(target) ? GRPC_OK : GRPC_INTERNAL;
}

static const char *const paths[] = {
	"/csi.v1.Identity/GetPluginInfo",
	"/csi.v1.Identity/GetPluginCapabilities",
	"/csi.v1.Identity/Probe",
	"/csi.v1.Node/NodeGetInfo",
	"/csi.v1.Node/NodeGetCapabilities",
	"/csi.v1.Node/NodePublishVolume",
	"/csi.v1.Node/NodeUnpublishVolume",
	"/csi.v1.Node/NodeStageVolume",
};

static void handoff(const uint8_t *data, size_t size)
{
	struct handoff h;
	int sv[2];

	if (size > HANDOFF_MAX_MSG || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0)
		return;
	if (send(sv[0], data, size, 0) == (ssize_t)size && handoff_recv(sv[1], &h, 0) == 0) {
		/* Accepted: an error, or a volume with both descriptors. */
		if (!h.error[0] && (h.fuse_fd < 0 || h.state_fd < 0 || !h.bucket[0]))
			abort();
		handoff_close(&h);
	}
	close(sv[0]);
	close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char node[] = "node-1";
	struct csi_service svc = { .node_id = node, .volumes = NULL };
	struct grpc_call call;

	if (size < 1)
		return 0;
	log_set_level(LOG_CRIT);
	if (data[0] & 0x80) {
		handoff(data + 1, size - 1);
		return 0;
	}
	memset(&call, 0, sizeof(call));
	call.path = paths[data[0] % (sizeof(paths) / sizeof(paths[0]))];
	call.req = data + 1;
	call.req_len = size - 1;
	/* An answer is a reply (OK) or a reason (anything else), never neither. */
	if (csi_service_handle(&svc, &call) == GRPC_OK ? !call.reply : !call.message[0])
		abort();
	free(call.reply);
	return 0;
}
