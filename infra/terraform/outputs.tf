output "workloads" {
  description = "the product's workloads, by process (zongzhi.processes)"
  value = {
    api              = module.api.workloads
    projector        = module.projector.workloads
    router           = module.router.workloads
    scheduler        = module.scheduler.workloads
    audit-chain      = module.audit_chain.workloads
    audit-checkpoint = module.audit_checkpoint.workloads
    vision-worker    = module.vision_worker.workloads
    alert-service    = module.alert_service.workloads
  }
}

output "citus_nodes" {
  description = "the coordinator and the workers registered with citus_add_node"
  value       = { coordinator = local.coordinator_host, workers = local.worker_hosts }
}
