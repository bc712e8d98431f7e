# A province: Zhejiang, 11 cities, 27,035 centers, ~11,300 cases/day, ~14 events/s at the
# peak hour (docs/scaling.md). Citus: 2 workers, each city's log group a distributed
# schema; the per-city workers split the cities in 3 shards balanced by load
# (python bench/placement.py --shards 3).
#   terraform apply -var-file=sizes/provincial.tfvars -var-file=images.tfvars
size               = "provincial"
kubeconfig_context = "zongzhi-zhejiang"

city_shards = [
  ["3303", "3306", "3311"],
  ["3301", "3302", "3304", "3305"],
  ["3307", "3308", "3309", "3310"],
]
worker_copies = 1

citus = {
  workers                 = 2
  coordinator_cpu         = "4"
  coordinator_memory      = "16Gi"
  coordinator_storage     = "100Gi"
  worker_cpu              = "8"
  worker_memory           = "32Gi"
  worker_storage          = "500Gi"
  shared_buffers          = "4GB"
  max_connections         = 500
  wal_archive_command     = "pgbackrest --stanza=$HOSTNAME archive-push %p"
  restore_point_every_min = 15
}

pgbouncer = {
  replicas          = 2
  default_pool_size = 220
  max_client_conn   = 1000
}

nats = {
  replicas       = 3
  storage        = "100Gi"
  memory         = "4Gi"
  cpu            = "2"
  chart_version  = "1.2.6"
  stream_replica = 3
}

triton = {
  replicas      = 2
  gpus_per_pod  = 1
  cpu           = "8"
  memory        = "32Gi"
  node_selector = { "nvidia.com/gpu.present" = "true" }
}

api = {
  min_replicas = 3
  max_replicas = 12
  cpu          = "1"
  memory       = "1Gi"
  cpu_limit    = "2"
  memory_limit = "2Gi"
}

worker_resources = {
  cpu          = "500m"
  memory       = "512Mi"
  cpu_limit    = "2"
  memory_limit = "1Gi"
}

vision = {
  cpu          = "2"
  memory       = "2Gi"
  memory_limit = "4Gi"
}

oidc = {
  issuer   = "https://sso.zj.example.gov.cn/realms/zongzhi"
  audience = "zongzhi"
  jwks_url = "https://sso.zj.example.gov.cn/realms/zongzhi/protocol/openid-connect/certs"
}

egress_cidrs          = ["10.200.0.0/16"]
otel_backend_endpoint = "https://otel.zj.example.gov.cn"

# Cameras are data: each group is one vision worker (see docs/runbook.md "Cameras"); a
# group of ~16 cameras at 2 fps is what one worker and one GPU's batch keep up with.
camera_groups = [
  [
    { camera = "hz-xihu-square-01", tenant = "330106", source = "rtsp://10.31.1.11/stream1", model = "ssdlite-person", fps = 2 },
    { camera = "hz-xihu-firelane-01", tenant = "330106", source = "rtsp://10.31.1.12/stream1", model = "yolov3-tiny", fps = 2 },
  ],
  [
    { camera = "jh-yiwu-market-01", tenant = "330782", source = "rtsp://10.37.1.11/stream1", model = "ssdlite-person", fps = 2 },
  ],
]
camera_cidrs = ["10.31.0.0/16", "10.37.0.0/16"]
