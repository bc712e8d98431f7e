# Inputs. Two sizes are given in sizes/: small.tfvars (one city) and provincial.tfvars
# (Zhejiang: 11 cities, 27,036 centers); docs/scaling.md derives the figures.

variable "kubeconfig_path" {
  description = "kubeconfig file of the target cluster"
  type        = string
  default     = "~/.kube/config"
}

variable "kubeconfig_context" {
  description = "kubeconfig context of the target cluster"
  type        = string
}

variable "namespace" {
  description = "namespace that holds every zongzhi workload"
  type        = string
  default     = "zongzhi"
}

variable "size" {
  description = "name of the sizing (small, provincial, national): a label on every object"
  type        = string
  validation {
    condition     = contains(["small", "provincial", "national"], var.size)
    error_message = "size must be small, provincial or national."
  }
}

variable "city_shards" {
  description = <<-EOT
    Cities (4-digit codes) per copy of each per-city worker (projector, router, scheduler,
    audit chain): one shard per list. A city appears in exactly one shard; an empty
    list means every city. bench/placement.py prints a balanced split.
  EOT
  type        = list(list(string))
  validation {
    condition     = length(var.city_shards) > 0 && alltrue([for s in var.city_shards : alltrue([for c in s : can(regex("^[1-9][0-9]{3}$", c))])])
    error_message = "city_shards needs at least one shard, and every city is a 4-digit division code."
  }
  validation {
    condition     = length(flatten(var.city_shards)) == length(distinct(flatten(var.city_shards)))
    error_message = "a city may be followed by one shard only."
  }
}

variable "worker_copies" {
  description = "copies of each per-city worker shard (2 = a warm spare; positions are in PostgreSQL, so copies never double work)"
  type        = number
  default     = 1
  validation {
    condition     = var.worker_copies >= 1 && var.worker_copies <= 3
    error_message = "worker_copies must be 1, 2 or 3."
  }
}

variable "citus" {
  description = "PostgreSQL with Citus: one coordinator and N workers (StatefulSets)"
  type = object({
    workers                 = number
    coordinator_cpu         = string
    coordinator_memory      = string
    coordinator_storage     = string
    worker_cpu              = string
    worker_memory           = string
    worker_storage          = string
    shared_buffers          = string
    max_connections         = number
    wal_archive_command     = string
    restore_point_every_min = number
  })
  validation {
    condition     = var.citus.workers >= 1 && var.citus.workers <= 64
    error_message = "citus.workers must be between 1 and 64."
  }
}

variable "pgbouncer" {
  description = "PgBouncer in front of the coordinator (session pooling: the followers LISTEN)"
  type = object({
    replicas          = number
    default_pool_size = number
    max_client_conn   = number
  })
}

variable "nats" {
  description = "NATS JetStream cluster: always 3 servers so R3 streams survive one loss"
  type = object({
    replicas       = number
    storage        = string
    memory         = string
    cpu            = string
    chart_version  = string
    stream_replica = number
  })
  validation {
    condition     = var.nats.replicas == 3 && var.nats.stream_replica == 3
    error_message = "the NATS cluster has 3 servers and R3 streams (a quorum of 2 survives the loss of one)."
  }
}

variable "triton" {
  description = "Triton Inference Server on GPU nodes"
  type = object({
    replicas      = number
    gpus_per_pod  = number
    cpu           = string
    memory        = string
    node_selector = map(string)
  })
}

variable "api" {
  description = "the API deployment and its autoscaling"
  type = object({
    min_replicas = number
    max_replicas = number
    cpu          = string
    memory       = string
    cpu_limit    = string
    memory_limit = string
  })
  validation {
    condition     = var.api.min_replicas >= 2 && var.api.max_replicas >= var.api.min_replicas
    error_message = "the API runs at least 2 replicas (a rollout or a node loss keeps it up)."
  }
}

variable "worker_resources" {
  description = "requests and limits of each per-city worker copy"
  type = object({
    cpu          = string
    memory       = string
    cpu_limit    = string
    memory_limit = string
  })
}

variable "vision" {
  description = "resources of each vision worker (frames -> Triton -> NATS)"
  type = object({
    cpu          = string
    memory       = string
    memory_limit = string
  })
}

variable "camera_groups" {
  description = <<-EOT
    Cameras per vision worker: one Deployment per group, each reading its group as
    /etc/zongzhi/cameras.json (vision.worker.CameraConfig fields). A second copy of a
    group would analyse the same frames twice, so groups, not replicas, scale it.
  EOT
  type = list(list(object({
    camera = string
    tenant = string
    source = string
    model  = string
    fps    = number
  })))
  default = []
}

variable "camera_cidrs" {
  description = "networks of the cameras' RTSP streams (port 554)"
  type        = list(string)
  default     = []
}

variable "images" {
  description = "every image by repository and digest (never a tag alone): see infra/images/README.md"
  type = map(object({
    repository = string
    digest     = string
  }))
  validation {
    condition     = alltrue([for i in values(var.images) : can(regex("^sha256:[0-9a-f]{64}$", i.digest))])
    error_message = "every image is pinned by a sha256 digest."
  }
  validation {
    condition     = length(setsubtract(["zongzhi", "zongzhi-vision", "zongzhi-models", "citus", "pgbouncer", "nats", "nats-box", "triton", "otel-collector"], keys(var.images))) == 0
    error_message = "images must name zongzhi, zongzhi-vision, zongzhi-models, citus, pgbouncer, nats, nats-box, triton and otel-collector."
  }
}

variable "secrets" {
  description = <<-EOT
    Names of Kubernetes Secrets made outside Terraform (an operator, or a secrets
    operator from a vault). Terraform only references them; their values are never
    in code, state or plan. Keys: see docs/runbook.md "Secrets".
  EOT
  type = object({
    database = string # key url (the app's PostgreSQL URL through PgBouncer), password (postgres)
    keys     = string # keys master (ZONGZHI_MASTER_KEY), audit (ZONGZHI_AUDIT_KEY)
    backup   = string # pgBackRest repository credentials, mounted into the database pods
  })
  default = {
    database = "zongzhi-database"
    keys     = "zongzhi-keys"
    backup   = "zongzhi-backup"
  }
}

variable "oidc" {
  description = "the OIDC provider that issues staff tokens (public settings only)"
  type = object({
    issuer   = string
    audience = string
    jwks_url = string
  })
}

variable "open311" {
  description = "rate limit of the citizens' Open311 intake, per API key"
  type = object({
    rate_per_minute = number
    burst           = number
  })
  default = {
    rate_per_minute = 60
    burst           = 20
  }
}

variable "ingress_namespace" {
  description = "namespace of the ingress controller allowed to reach the API"
  type        = string
  default     = "ingress-nginx"
}

variable "egress_cidrs" {
  description = "outside addresses the API (OIDC JWKS), the collector (telemetry backend) and backups (object store) may reach on 443"
  type        = list(string)
}

variable "otel_backend_endpoint" {
  description = "OTLP/HTTP endpoint the collector exports to (traces, metrics, logs)"
  type        = string
}

variable "storage_class" {
  description = "storage class of the database and NATS volumes (SSD, with volume expansion)"
  type        = string
  default     = "ssd"
}
