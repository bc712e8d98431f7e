# The product's processes (zongzhi.processes.PROCESSES), one module call each.

module "api" {
  source                 = "./modules/process"
  name                   = "api"
  namespace              = kubernetes_namespace_v1.zongzhi.metadata[0].name
  command                = local.processes["api"].command
  servers                = local.processes["api"].servers
  image                  = "${var.images["zongzhi"].repository}@${var.images["zongzhi"].digest}"
  http_port              = 8000
  autoscale              = { min = var.api.min_replicas, max = var.api.max_replicas, cpu_target = 65 }
  resources              = { cpu = var.api.cpu, memory = var.api.memory, cpu_limit = var.api.cpu_limit, memory_limit = var.api.memory_limit }
  ingress_from_namespace = var.ingress_namespace
  egress                 = [{ cidrs = var.egress_cidrs, port = 443 }] # the OIDC provider's JWKS
  labels                 = local.labels
  env = merge(local.common_env, {
    ZONGZHI_NATS_URL                = local.nats_url
    ZONGZHI_OIDC_ISSUER             = var.oidc.issuer
    ZONGZHI_OIDC_AUDIENCE           = var.oidc.audience
    ZONGZHI_OIDC_JWKS_URL           = var.oidc.jwks_url
    ZONGZHI_OPEN311_RATE_PER_MINUTE = tostring(var.open311.rate_per_minute)
    ZONGZHI_OPEN311_BURST           = tostring(var.open311.burst)
    OTEL_EXPORTER_OTLP_ENDPOINT     = local.otel_endpoint
    OTEL_SERVICE_NAME               = "zongzhi-api"
  })
  secret_env = merge(local.database_env, local.master_key_env, local.audit_key_env)
}

module "projector" {
  source     = "./modules/process"
  name       = "projector"
  namespace  = kubernetes_namespace_v1.zongzhi.metadata[0].name
  command    = local.processes["projector"].command
  servers    = local.processes["projector"].servers
  image      = "${var.images["zongzhi"].repository}@${var.images["zongzhi"].digest}"
  shards     = var.city_shards
  replicas   = var.worker_copies
  resources  = var.worker_resources
  labels     = local.labels
  env        = merge(local.common_env, { OTEL_EXPORTER_OTLP_ENDPOINT = local.otel_endpoint, OTEL_SERVICE_NAME = "zongzhi-projector" })
  secret_env = merge(local.database_env, local.master_key_env)
}

module "router" {
  source     = "./modules/process"
  name       = "router"
  namespace  = kubernetes_namespace_v1.zongzhi.metadata[0].name
  command    = local.processes["router"].command
  servers    = local.processes["router"].servers
  image      = "${var.images["zongzhi"].repository}@${var.images["zongzhi"].digest}"
  shards     = var.city_shards
  replicas   = var.worker_copies
  resources  = var.worker_resources
  labels     = local.labels
  env        = merge(local.common_env, { OTEL_EXPORTER_OTLP_ENDPOINT = local.otel_endpoint, OTEL_SERVICE_NAME = "zongzhi-router" })
  secret_env = merge(local.database_env, local.master_key_env)
}

module "scheduler" {
  source     = "./modules/process"
  name       = "scheduler"
  namespace  = kubernetes_namespace_v1.zongzhi.metadata[0].name
  command    = local.processes["scheduler"].command
  servers    = local.processes["scheduler"].servers
  image      = "${var.images["zongzhi"].repository}@${var.images["zongzhi"].digest}"
  shards     = var.city_shards
  replicas   = var.worker_copies
  resources  = var.worker_resources
  labels     = local.labels
  env        = merge(local.common_env, { OTEL_EXPORTER_OTLP_ENDPOINT = local.otel_endpoint, OTEL_SERVICE_NAME = "zongzhi-scheduler" })
  secret_env = merge(local.database_env, local.master_key_env)
}

module "audit_chain" {
  source     = "./modules/process"
  name       = "audit-chain"
  namespace  = kubernetes_namespace_v1.zongzhi.metadata[0].name
  command    = local.processes["audit-chain"].command
  servers    = local.processes["audit-chain"].servers
  image      = "${var.images["zongzhi"].repository}@${var.images["zongzhi"].digest}"
  shards     = var.city_shards
  replicas   = var.worker_copies
  resources  = var.worker_resources
  labels     = local.labels
  env        = merge(local.common_env, { OTEL_EXPORTER_OTLP_ENDPOINT = local.otel_endpoint, OTEL_SERVICE_NAME = "zongzhi-audit-chain" })
  secret_env = merge(local.database_env, local.master_key_env, local.audit_key_env)
}

module "audit_checkpoint" {
  source    = "./modules/process"
  name      = "audit-checkpoint"
  namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
  command   = local.processes["audit-checkpoint"].command
  servers   = local.processes["audit-checkpoint"].servers
  image     = "${var.images["zongzhi"].repository}@${var.images["zongzhi"].digest}"
  schedule  = "*/10 * * * *"
  resources = var.worker_resources
  labels    = local.labels
  env = merge(local.common_env, {
    ZONGZHI_NATS_URL            = local.nats_url # the JetStream witness (stream ZONGZHI_AUDIT, R3)
    OTEL_EXPORTER_OTLP_ENDPOINT = local.otel_endpoint
    OTEL_SERVICE_NAME           = "zongzhi-audit-checkpoint"
  })
  secret_env = merge(local.database_env, local.master_key_env, local.audit_key_env)
}

module "vision_worker" {
  source      = "./modules/process"
  name        = "vision-worker"
  namespace   = kubernetes_namespace_v1.zongzhi.metadata[0].name
  entrypoint  = ["python", "-m", "vision.worker"]
  command     = local.processes["vision-worker"].command
  servers     = local.processes["vision-worker"].servers
  image       = "${var.images["zongzhi-vision"].repository}@${var.images["zongzhi-vision"].digest}"
  shard_files = [for group in var.camera_groups : jsonencode(group)]
  file_path   = "/etc/zongzhi/cameras.json"
  resources   = { cpu = var.vision.cpu, memory = var.vision.memory, cpu_limit = var.vision.cpu, memory_limit = var.vision.memory_limit }
  egress      = [{ cidrs = var.camera_cidrs, port = 554 }] # RTSP
  labels      = local.labels
  env = merge(local.common_env, {
    ZONGZHI_NATS_URL            = local.nats_url
    ZONGZHI_TRITON_URL          = local.triton_url
    OTEL_EXPORTER_OTLP_ENDPOINT = local.otel_endpoint
    OTEL_SERVICE_NAME           = "zongzhi-vision-worker"
  })
}

module "alert_service" {
  source    = "./modules/process"
  name      = "alert-service"
  namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
  command   = local.processes["alert-service"].command
  servers   = local.processes["alert-service"].servers
  image     = "${var.images["zongzhi"].repository}@${var.images["zongzhi"].digest}"
  shards    = var.city_shards # zone rules track a camera over time: one copy per city
  resources = var.worker_resources
  labels    = local.labels
  env = merge(local.common_env, {
    ZONGZHI_NATS_URL            = local.nats_url
    OTEL_EXPORTER_OTLP_ENDPOINT = local.otel_endpoint
    OTEL_SERVICE_NAME           = "zongzhi-alert-service"
  })
  secret_env = merge(local.database_env, local.master_key_env)
}
