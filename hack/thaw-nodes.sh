#!/usr/bin/env bash
# Thaws every frozen cgroup under nodeconform's containers (kind nodes,
# build containers), so that `docker rm -f` can kill them. Seen on
# 2026-12-06 after a .ci/run: two `runc init` processes of a kind node
# stayed in a FROZEN cgroup v1 freezer (runc freezes a container's cgroup
# while systemd updates its device rules; a runc killed in that window
# leaves it frozen), Docker could not kill the node ("did not receive an
# exit event"), and `make clean` left it running under the cluster's
# name. Writing THAWED (v1) or 0 (v2) to a cgroup that is not frozen
# changes nothing.
set -u
for id in $(docker ps -aq --no-trunc --filter label=io.nodeconform.build=true 2>/dev/null); do
	for root in /sys/fs/cgroup/freezer/docker/"$id" /sys/fs/cgroup/freezer/system.slice/docker-"$id".scope \
		/sys/fs/cgroup/system.slice/docker-"$id".scope /sys/fs/cgroup/docker/"$id"; do
		[ -d "$root" ] || continue
		find "$root" -name freezer.state 2>/dev/null | while read -r f; do
			grep -q FROZEN "$f" 2>/dev/null && echo THAWED > "$f" && echo "thawed $f"
		done
		find "$root" -name cgroup.freeze 2>/dev/null | while read -r f; do
			grep -q 1 "$f" 2>/dev/null && echo 0 > "$f" && echo "thawed $f"
		done
	done
done
exit 0
