# One city: 金华市 (3307), 3,456 centers, ~1,370 cases/day, ~1.7 events/s at the peak hour
# (docs/scaling.md). Sized for availability, not load: two of everything that serves.
#   terraform apply -var-file=sizes/small.tfvars -var-file=images.tfvars
size               = "small"
kubeconfig_context = "zongzhi-small"

city_shards   = [["3307"]]
worker_copies = 1

citus = {
  workers                 = 1
  coordinator_cpu         = "2"
  coordinator_memory      = "8Gi"
  coordinator_storage     = "50Gi"
  worker_cpu              = "2"
  worker_memory           = "8Gi"
  worker_storage          = "100Gi"
  shared_buffers          = "2GB"
  max_connections         = 200
  wal_archive_command     = "pgbackrest --stanza=$HOSTNAME archive-push %p"
  restore_point_every_min = 15
}

pgbouncer = {
  replicas          = 2
  default_pool_size = 80
  max_client_conn   = 400
}

nats = {
  replicas       = 3
  storage        = "10Gi"
  memory         = "1Gi"
  cpu            = "500m"
  chart_version  = "1.2.6"
  stream_replica = 3
}

triton = {
  replicas      = 1
  gpus_per_pod  = 1
  cpu           = "4"
  memory        = "16Gi"
  node_selector = { "nvidia.com/gpu.present" = "true" }
}

api = {
  min_replicas = 2
  max_replicas = 4
  cpu          = "500m"
  memory       = "512Mi"
  cpu_limit    = "2"
  memory_limit = "1Gi"
}

worker_resources = {
  cpu          = "250m"
  memory       = "384Mi"
  cpu_limit    = "1"
  memory_limit = "768Mi"
}

vision = {
  cpu          = "1"
  memory       = "1Gi"
  memory_limit = "2Gi"
}

oidc = {
  issuer   = "https://sso.example.gov.cn/realms/zongzhi"
  audience = "zongzhi"
  jwks_url = "https://sso.example.gov.cn/realms/zongzhi/protocol/openid-connect/certs"
}

egress_cidrs          = ["10.200.0.0/16"] # the government cloud's SSO, telemetry and object store
otel_backend_endpoint = "https://otel.example.gov.cn"

# Cameras are data: each group is one vision worker (see docs/runbook.md "Cameras").
camera_groups = [[
  { camera = "jh-yiwu-market-01", tenant = "330782", source = "rtsp://10.30.1.11/stream1", model = "ssdlite-person", fps = 2 },
  { camera = "jh-yiwu-firelane-01", tenant = "330782", source = "rtsp://10.30.1.12/stream1", model = "yolov3-tiny", fps = 2 },
]]
camera_cidrs = ["10.30.0.0/16"]
