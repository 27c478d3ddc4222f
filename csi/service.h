/*
 * service: the CSI Identity and Node services, as a grpc_handler_fn.
 *
 * Decodes each request (protobuf-c, from csi_min.proto), checks it as the CSI
 * specification asks, and answers; publishing and unpublishing go to
 * csi/volume.c. Bad requests get INVALID_ARGUMENT (or the code the
 * specification names) with a message that says which field and what to do.
 * Runs on the plugin's one thread.
 */
#ifndef IRSAFS_CSI_SERVICE_H
#define IRSAFS_CSI_SERVICE_H

#include "csi/grpc.h"

/* The driver name the CSIDriver object, the kubelet and the manifests use. */
#define CSI_DRIVER_NAME "irsafs.csi"

struct volumes;

struct csi_service {
	char *node_id;
	struct volumes *volumes;
};

/* grpc_handler_fn; ctx is a struct csi_service. */
int csi_service_handle(void *ctx, struct grpc_call *call);

#endif
