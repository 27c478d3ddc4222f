#!/usr/bin/python3
"""A CSI client built from the full specification's csi.proto, in its own process
(its messages share the package csi.v1 with csi_min.proto, and one descriptor
pool cannot hold both).

    spec_client.py PROTO_DIR ENDPOINT VOLUME_ID TARGET POD_UID

PROTO_DIR holds csi_pb2.py and csi_pb2_grpc.py generated from csi.proto. It
calls every Identity RPC and the four Node RPCs irsafs-csi serves, checks the
answers against the specification's types, and prints "ok" at the end.
"""
import sys

sys.dont_write_bytecode = True
proto_dir, endpoint, volume_id, target, pod_uid = sys.argv[1:6]
sys.path.insert(0, proto_dir)
import grpc  # noqa: E402
import csi_pb2 as pb  # noqa: E402
import csi_pb2_grpc as stubs  # noqa: E402

channel = grpc.insecure_channel("unix://" + endpoint)
identity = stubs.IdentityStub(channel)
node = stubs.NodeStub(channel)
T = 60

assert identity.GetPluginInfo(pb.GetPluginInfoRequest(), timeout=T).name == "irsafs.csi"
assert list(identity.GetPluginCapabilities(pb.GetPluginCapabilitiesRequest(),
                                           timeout=T).capabilities) == []
assert identity.Probe(pb.ProbeRequest(), timeout=T).ready.value is True
assert list(node.NodeGetCapabilities(pb.NodeGetCapabilitiesRequest(), timeout=T).capabilities) == []
info = node.NodeGetInfo(pb.NodeGetInfoRequest(), timeout=T)
assert info.node_id == "node-1" and not info.HasField("accessible_topology")
try:
    node.NodeStageVolume(pb.NodeStageVolumeRequest(volume_id="v"), timeout=T)
    raise AssertionError("NodeStageVolume answered")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.UNIMPLEMENTED, e
# Fields irsafs-csi's own proto leaves out (publish_context, secrets) are skipped.
cap = pb.VolumeCapability(mount=pb.VolumeCapability.MountVolume(volume_mount_group="2000"),
                          access_mode=pb.VolumeCapability.AccessMode(
                              mode=pb.VolumeCapability.AccessMode.SINGLE_NODE_WRITER))
req = pb.NodePublishVolumeRequest(
    volume_id=volume_id, target_path=target, volume_capability=cap, readonly=True,
    publish_context={"k": "v"}, secrets={"unused": "secret-value"},
    volume_context={"bucket": "demo-bucket", "csi.storage.k8s.io/pod.uid": pod_uid})
node.NodePublishVolume(req, timeout=T)
node.NodePublishVolume(req, timeout=T)
node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target),
                         timeout=T)
node.NodeUnpublishVolume(pb.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target),
                         timeout=T)
channel.close()
print("ok")
