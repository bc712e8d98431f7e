# One product process of zongzhi.processes.PROCESSES: its workloads, probes, budget,
# autoscaling and network policy.

variable "name" {
  description = "the process's name in zongzhi.processes (also the workload's name)"
  type        = string
}

variable "namespace" {
  type = string
}

variable "command" {
  description = "arguments to the zongzhi command (zongzhi.processes.Process.command)"
  type        = list(string)
}

variable "image" {
  description = "repository@sha256:digest"
  type        = string
  validation {
    condition     = can(regex("@sha256:[0-9a-f]{64}$", var.image))
    error_message = "the image must be pinned by digest."
  }
}

variable "servers" {
  description = "servers the process talks to: postgres, nats, triton"
  type        = list(string)
}

variable "http_port" {
  description = "port serving /healthz and /readyz (null: exec probes of zongzhi.probe)"
  type        = number
  default     = null
}

variable "schedule" {
  description = "cron schedule: the process runs as a CronJob instead of a Deployment"
  type        = string
  default     = null
}

variable "shards" {
  description = "cities per copy (--city each); [[]] is one workload over every city"
  type        = list(list(string))
  default     = [[]]
}

variable "replicas" {
  description = "pods per shard when not autoscaled"
  type        = number
  default     = 1
}

variable "autoscale" {
  description = "HorizontalPodAutoscaler bounds and target CPU utilisation (null: fixed replicas)"
  type = object({
    min        = number
    max        = number
    cpu_target = number
  })
  default = null
}

variable "resources" {
  type = object({
    cpu          = string
    memory       = string
    cpu_limit    = string
    memory_limit = string
  })
}

variable "env" {
  description = "plain settings (never secrets)"
  type        = map(string)
  default     = {}
}

variable "secret_env" {
  description = "variables read from Secrets made outside Terraform: name => {secret, key}"
  type = map(object({
    secret = string
    key    = string
  }))
  default = {}
}

variable "ingress_from_namespace" {
  description = "namespace allowed to reach http_port (the ingress controller); null: no ingress"
  type        = string
  default     = null
}

variable "egress" {
  description = "outside addresses this process may reach, by port (the OIDC JWKS on 443, cameras' RTSP on 554)"
  type = list(object({
    cidrs = list(string)
    port  = number
  }))
  default = []
}

variable "entrypoint" {
  description = "the container's command, when not the image's ENTRYPOINT (zongzhi)"
  type        = list(string)
  default     = null
}

variable "shard_files" {
  description = <<-EOT
    One file per shard instead of --city flags: shard i gets shard_files[i] mounted at
    file_path (e.g. the cameras of a vision worker). null: shards are cities.
  EOT
  type        = list(string)
  default     = null
}

variable "file_path" {
  description = "where a shard's file is mounted (with shard_files)"
  type        = string
  default     = "/etc/zongzhi/shard.json"
}

variable "labels" {
  type    = map(string)
  default = {}
}
