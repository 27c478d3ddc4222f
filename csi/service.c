/*
 * The CSI methods. Each takes a decoded request and fills the reply or an
 * error message; csi_service_handle does the decoding, the encoding and the
 * table lookup by gRPC path.
 *
 * What a NodePublishVolume must look like for irsafs: a mount (not block)
 * capability with an access mode, read-only (the readonly flag, or a
 * *_READER_ONLY mode: the kubelet sends SINGLE_NODE_WRITER for inline
 * volumes and sets readonly from the Pod's readOnly), volume attributes
 * bucket and optionally prefix, and the kubelet's pod.uid (podInfoOnMount).
 */
#include "csi/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "core/log.h"
#include "csi/csi_min.pb-c.h"
#include "csi/volume.h"

#define KUBELET_ATTR "csi.storage.k8s.io/"
#define POD_UID_ATTR "csi.storage.k8s.io/pod.uid"

typedef int (*method_fn)(struct csi_service *svc, const ProtobufCMessage *req,
			 ProtobufCMessage **reply, char *msg, size_t len);

/* Pack m into the call's reply. */
static int pack(struct grpc_call *call, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);

	call->reply = malloc(n ? n : 1);
	if (!call->reply) {
		snprintf(call->message, sizeof(call->message), "out of memory");
		return GRPC_RESOURCE_EXHAUSTED;
	}
	call->reply_len = protobuf_c_message_pack(m, call->reply);
	return GRPC_OK;
}

static int get_plugin_info(struct csi_service *svc, const ProtobufCMessage *req,
			   ProtobufCMessage **reply, char *msg, size_t len)
{
	static char name[] = CSI_DRIVER_NAME, version[] = IRSAFS_VERSION;
	Csi__V1__GetPluginInfoResponse *r = malloc(sizeof(*r));

	if (!r)
		return GRPC_RESOURCE_EXHAUSTED;
	csi__v1__get_plugin_info_response__init(r);
	r->name = name;
	r->vendor_version = version;
	*reply = &r->base;
	return GRPC_OK;
}

static int get_plugin_capabilities(struct csi_service *svc, const ProtobufCMessage *req,
				   ProtobufCMessage **reply, char *msg, size_t len)
{
	Csi__V1__GetPluginCapabilitiesResponse *r = malloc(sizeof(*r));

	if (!r)
		return GRPC_RESOURCE_EXHAUSTED;
	csi__v1__get_plugin_capabilities_response__init(r);
	*reply = &r->base;
	return GRPC_OK;
}

static int probe(struct csi_service *svc, const ProtobufCMessage *req, ProtobufCMessage **reply,
		 char *msg, size_t len)
{
	/* Ready from the start: there is nothing to initialise. */
	static Csi__V1__BoolValue ready = CSI__V1__BOOL_VALUE__INIT;
	Csi__V1__ProbeResponse *r = malloc(sizeof(*r));

	if (!r)
		return GRPC_RESOURCE_EXHAUSTED;
	csi__v1__probe_response__init(r);
	ready.value = 1;
	r->ready = &ready;
	*reply = &r->base;
	return GRPC_OK;
}

static int node_get_info(struct csi_service *svc, const ProtobufCMessage *req,
			 ProtobufCMessage **reply, char *msg, size_t len)
{
	Csi__V1__NodeGetInfoResponse *r = malloc(sizeof(*r));

	if (!r)
		return GRPC_RESOURCE_EXHAUSTED;
	csi__v1__node_get_info_response__init(r);
	r->node_id = svc->node_id;
	r->max_volumes_per_node = 0;	/* no limit */
	*reply = &r->base;
	return GRPC_OK;
}

static int node_get_capabilities(struct csi_service *svc, const ProtobufCMessage *req,
				 ProtobufCMessage **reply, char *msg, size_t len)
{
	Csi__V1__NodeGetCapabilitiesResponse *r = malloc(sizeof(*r));

	if (!r)
		return GRPC_RESOURCE_EXHAUSTED;
	csi__v1__node_get_capabilities_response__init(r);
	*reply = &r->base;
	return GRPC_OK;
}

/* A value that will travel in a handoff line and a log line: no control bytes. */
static int printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static int check_path(const char *field, const char *p, char *msg, size_t len)
{
	if (!*p) {
		snprintf(msg, len, "%s is missing", field);
		return -1;
	}
	if (p[0] != '/' || strstr(p, "/../") || strstr(p, "/./") || strstr(p, "//") ||
	    (strlen(p) >= 3 && !strcmp(p + strlen(p) - 3, "/..")) || strlen(p) > 4000 ||
	    !printable(p)) {
		snprintf(msg, len, "%s must be a normalised absolute path: got \"%.200s\"", field, p);
		return -1;
	}
	return 0;
}

static int check_pod_uid(const char *u)
{
	size_t n = strlen(u);

	if (n == 0 || n > 64)
		return -1;
	for (; *u; u++)
		if (!((*u >= '0' && *u <= '9') || (*u >= 'a' && *u <= 'z') ||
		      (*u >= 'A' && *u <= 'Z') || *u == '-'))
			return -1;
	return 0;
}

/* Fill spec's bucket, prefix and pod_uid from the volume context. */
static int check_context(const Csi__V1__NodePublishVolumeRequest *r, struct volume_spec *s,
			 char *msg, size_t len)
{
	const char *k, *v;
	size_t i;

	s->bucket = NULL;
	s->prefix = "";
	s->pod_uid = NULL;
	for (i = 0; i < r->n_volume_context; i++) {
		k = r->volume_context[i]->key;
		v = r->volume_context[i]->value;
		if (!printable(v)) {
			snprintf(msg, len, "volume attribute %.100s has a control character", k);
			return -1;
		}
		if (!strcmp(k, "bucket")) {
			s->bucket = v;
		} else if (!strcmp(k, "prefix")) {
			s->prefix = v;
		} else if (!strcmp(k, POD_UID_ATTR)) {
			s->pod_uid = v;
		} else if (strncmp(k, KUBELET_ATTR, strlen(KUBELET_ATTR)) != 0) {
			snprintf(msg, len, "unknown volume attribute \"%.100s\": irsafs takes bucket "
				 "and prefix (options for every volume go on the command line of "
				 "irsafs serve)", k);
			return -1;
		}
	}
	if (!s->bucket || !*s->bucket) {
		snprintf(msg, len, "volume attribute bucket is missing: set volumeAttributes.bucket "
			 "to the S3 bucket's name");
		return -1;
	}
	if (strlen(s->bucket) > 255 || strchr(s->bucket, '/')) {
		snprintf(msg, len, "volume attribute bucket is not a bucket name: \"%.100s\"",
			 s->bucket);
		return -1;
	}
	if (strlen(s->prefix) > 1024) {
		snprintf(msg, len, "volume attribute prefix is longer than 1024 bytes");
		return -1;
	}
	if (!s->pod_uid) {
		snprintf(msg, len, "volume context has no %s: the CSIDriver object %s must set "
			 "podInfoOnMount: true", POD_UID_ATTR, CSI_DRIVER_NAME);
		return -1;
	}
	if (check_pod_uid(s->pod_uid) != 0) {
		snprintf(msg, len, "%s is not a Pod UID: \"%.100s\"", POD_UID_ATTR, s->pod_uid);
		return -1;
	}
	return 0;
}

static int check_capability(const Csi__V1__VolumeCapability *c, struct volume_spec *s,
			    char *msg, size_t len)
{
	size_t i;

	if (!c) {
		snprintf(msg, len, "volume_capability is missing");
		return -1;
	}
	if (c->access_type_case == CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_BLOCK) {
		snprintf(msg, len, "block access is not supported: irsafs volumes are file systems "
			 "(volumeMode: Filesystem)");
		return -1;
	}
	if (c->access_type_case != CSI__V1__VOLUME_CAPABILITY__ACCESS_TYPE_MOUNT || !c->mount) {
		snprintf(msg, len, "volume_capability has no access type: irsafs needs mount");
		return -1;
	}
	s->fs_type = c->mount->fs_type ? c->mount->fs_type : "";
	if (*s->fs_type && strcmp(s->fs_type, "irsafs") && strcmp(s->fs_type, "fuse.irsafs")) {
		snprintf(msg, len, "fs_type \"%.50s\" is not irsafs: leave fsType empty", s->fs_type);
		return -1;
	}
	for (i = 0; i < c->mount->n_mount_flags; i++)
		if (strcmp(c->mount->mount_flags[i], "ro") != 0) {
			snprintf(msg, len, "mount flag \"%.100s\" is not supported: options for "
				 "every volume go on the command line of irsafs serve",
				 c->mount->mount_flags[i]);
			return -1;
		}
	if (!c->access_mode ||
	    c->access_mode->mode == CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__UNKNOWN) {
		snprintf(msg, len, "volume_capability.access_mode is missing");
		return -1;
	}
	s->access_mode = (int)c->access_mode->mode;
	return 0;
}

static int node_publish(struct csi_service *svc, const ProtobufCMessage *req,
			ProtobufCMessage **reply, char *msg, size_t len)
{
	const Csi__V1__NodePublishVolumeRequest *r = (const void *)req;
	Csi__V1__NodePublishVolumeResponse *out;
	struct volume_spec s;
	int mode, rc;

	memset(&s, 0, sizeof(s));
	if (!*r->volume_id) {
		snprintf(msg, len, "volume_id is missing");
		return GRPC_INVALID_ARGUMENT;
	}
	if (strlen(r->volume_id) > 255 || !printable(r->volume_id)) {
		snprintf(msg, len, "volume_id is longer than 255 bytes or has control characters");
		return GRPC_INVALID_ARGUMENT;
	}
	s.volume_id = r->volume_id;
	if (check_path("target_path", r->target_path, msg, len) != 0 ||
	    check_capability(r->volume_capability, &s, msg, len) != 0)
		return GRPC_INVALID_ARGUMENT;
	s.target_path = r->target_path;
	mode = s.access_mode;
	s.readonly = r->readonly;
	if (!r->readonly && mode != CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__SINGLE_NODE_READER_ONLY &&
	    mode != CSI__V1__VOLUME_CAPABILITY__ACCESS_MODE__MODE__MULTI_NODE_READER_ONLY) {
		snprintf(msg, len, "irsafs volumes are read-only: set readOnly: true on the volume "
			 "(csi.readOnly in the Pod, or readOnly in the PersistentVolume's csi "
			 "section), or use the access mode ReadOnlyMany");
		return GRPC_INVALID_ARGUMENT;
	}
	if (check_context(r, &s, msg, len) != 0)
		return GRPC_INVALID_ARGUMENT;
	rc = volumes_publish(svc->volumes, &s, msg, len);
	if (rc != GRPC_OK)
		return rc;
	out = malloc(sizeof(*out));
	if (!out)
		return GRPC_RESOURCE_EXHAUSTED;
	csi__v1__node_publish_volume_response__init(out);
	*reply = &out->base;
	return GRPC_OK;
}

static int node_unpublish(struct csi_service *svc, const ProtobufCMessage *req,
			  ProtobufCMessage **reply, char *msg, size_t len)
{
	const Csi__V1__NodeUnpublishVolumeRequest *r = (const void *)req;
	Csi__V1__NodeUnpublishVolumeResponse *out;
	int rc;

	if (!*r->volume_id) {
		snprintf(msg, len, "volume_id is missing");
		return GRPC_INVALID_ARGUMENT;
	}
	if (check_path("target_path", r->target_path, msg, len) != 0)
		return GRPC_INVALID_ARGUMENT;
	rc = volumes_unpublish(svc->volumes, r->volume_id, r->target_path, msg, len);
	if (rc != GRPC_OK)
		return rc;
	out = malloc(sizeof(*out));
	if (!out)
		return GRPC_RESOURCE_EXHAUSTED;
	csi__v1__node_unpublish_volume_response__init(out);
	*reply = &out->base;
	return GRPC_OK;
}

static const struct method {
	const char *path;
	const ProtobufCMessageDescriptor *in;
	method_fn fn;
} methods[] = {
	{ "/csi.v1.Identity/GetPluginInfo", &csi__v1__get_plugin_info_request__descriptor,
	  get_plugin_info },
	{ "/csi.v1.Identity/GetPluginCapabilities",
	  &csi__v1__get_plugin_capabilities_request__descriptor, get_plugin_capabilities },
	{ "/csi.v1.Identity/Probe", &csi__v1__probe_request__descriptor, probe },
	{ "/csi.v1.Node/NodeGetInfo", &csi__v1__node_get_info_request__descriptor,
	  node_get_info },
	{ "/csi.v1.Node/NodeGetCapabilities", &csi__v1__node_get_capabilities_request__descriptor,
	  node_get_capabilities },
	{ "/csi.v1.Node/NodePublishVolume", &csi__v1__node_publish_volume_request__descriptor,
	  node_publish },
	{ "/csi.v1.Node/NodeUnpublishVolume", &csi__v1__node_unpublish_volume_request__descriptor,
	  node_unpublish },
};

int csi_service_handle(void *ctx, struct grpc_call *call)
{
	const struct method *m = NULL;
	ProtobufCMessage *req, *reply = NULL;
	size_t i;
	int code;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (!strcmp(call->path, methods[i].path))
			m = &methods[i];
	if (!m) {
		snprintf(call->message, sizeof(call->message), "%.200s is not implemented: "
			 "irsafs-csi serves the Identity service and the Node RPCs NodeGetInfo, "
			 "NodeGetCapabilities, NodePublishVolume and NodeUnpublishVolume",
			 call->path);
		return GRPC_UNIMPLEMENTED;
	}
	/* Fields this file's .proto leaves out are unknown fields: kept aside, not an error. */
	req = protobuf_c_message_unpack(m->in, NULL, call->req_len, call->req);
	if (!req) {
		snprintf(call->message, sizeof(call->message), "cannot decode the %s request",
			 m->in->name);
		return GRPC_INVALID_ARGUMENT;
	}
	code = m->fn(ctx, req, &reply, call->message, sizeof(call->message));
	if (code == GRPC_OK)
		code = pack(call, reply);
	else if (!call->message[0])
		snprintf(call->message, sizeof(call->message), "out of memory");
	if (code != GRPC_OK)
		log_msg(LOG_WARNING, "%s: %s", call->path + 1, call->message);
	else
		log_msg(LOG_DEBUG, "%s: OK", call->path + 1);
	free(reply);	/* only the outer struct is ours: its strings are static or the request's */
	protobuf_c_message_free_unpacked(req, NULL);
	return code;
}
