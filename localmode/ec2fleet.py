"""EC2 Fleet, locally: moto launches a fleet's instances with the launch template's image, type,
subnet and user data but without its security groups and disks, which EC2 gives them. While
inside `faithful_fleets()`, a fleet launches each instance from its launch template version as
RunInstances does, so the groups and volumes a launch asked for are on the instance."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from moto.ec2.models.fleets import Fleet
from moto.ec2.models.instances import Instance
from moto.ec2.models.spot_requests import SpotInstanceRequest


def _template(backend: Any, launch_spec: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The launch template (as RunInstances takes it) a fleet's launch spec came from, and
    that version's data."""
    spec = getattr(launch_spec, "launch_template_spec", None)
    if not spec:
        return None, {}
    template = {key: spec[key] for key in ("LaunchTemplateId", "Version") if key in spec}
    return template, backend._get_template_from_args(template).data


def _spot_instance(self: SpotInstanceRequest) -> Instance:
    spec = self.launch_specification
    template, data = _template(self.ec2_backend, self.launch_spec)
    reservation = self.ec2_backend.run_instances(
        image_id=spec.image_id, count=1, user_data=self.user_data,
        instance_type=spec.instance_type, is_instance_type_default=not spec.instance_type,
        subnet_id=spec.subnet_id, key_name=spec.key_name, security_group_names=[],
        # The template's groups when it names some, as EC2 does; else moto's default.
        security_group_ids=[] if data.get("SecurityGroupIds") else spec.groups,
        spot_fleet_id=self.spot_fleet_id, tags=self.all_tags, lifecycle="spot",
        **({"launch_template": template} if template else {}))
    return reservation.instances[0]


def _on_demand_instances(self: Fleet, weight_to_add: float) -> None:
    weight_map, added_weight = self.get_launch_spec_counts(weight_to_add)
    for launch_spec, count in weight_map.items():
        template, _ = _template(self.ec2_backend, launch_spec)
        reservation = self.ec2_backend.run_instances(
            image_id=launch_spec.image_id, count=count, instance_type=launch_spec.instance_type,
            is_instance_type_default=False, key_name=launch_spec.key_name,
            security_group_names=launch_spec.group_set, user_data=launch_spec.user_data,
            placement=None, kernel_id=None, ramdisk_id=None,
            monitoring_enabled=launch_spec.monitoring, subnet_id=launch_spec.subnet_id,
            fleet_id=self.id, tags=launch_spec.tag_specifications,
            **({"launch_template": template} if template else {}))
        for instance in reservation.instances:
            self.on_demand_instances.append(
                {"id": reservation.id, "instance": instance, "launch_spec": launch_spec})
    self.fulfilled_capacity += added_weight


@contextmanager
def faithful_fleets() -> Iterator[None]:
    originals = (SpotInstanceRequest.launch_instance, Fleet.create_on_demand_requests)
    SpotInstanceRequest.launch_instance = _spot_instance  # type: ignore[method-assign]
    Fleet.create_on_demand_requests = _on_demand_instances  # type: ignore[method-assign]
    try:
        yield
    finally:
        SpotInstanceRequest.launch_instance, Fleet.create_on_demand_requests = originals  # type: ignore[method-assign]
