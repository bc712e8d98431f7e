# Triton Inference Server on GPU nodes. The model repository (vision/models/production: config.pbtxt
# and weights for the ONNX Runtime / TensorRT backends) ships as the zongzhi-models image
# (infra/images/models.Dockerfile); an init container copies it into the pod, so the
# models a pod serves are exactly those of one image digest.

locals {
  triton_labels = merge(local.labels, { "app.kubernetes.io/name" = "triton" })
}

resource "kubernetes_deployment_v1" "triton" {
  metadata {
    name      = "triton"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.triton_labels
  }
  spec {
    replicas = var.triton.replicas
    selector {
      match_labels = { "app.kubernetes.io/name" = "triton" }
    }
    strategy {
      type = "RollingUpdate"
      rolling_update {
        max_surge       = "0" # GPUs are the scarce resource: replace in place
        max_unavailable = "1"
      }
    }
    template {
      metadata {
        labels = local.triton_labels
      }
      spec {
        automount_service_account_token = false
        node_selector                   = var.triton.node_selector
        security_context {
          run_as_non_root = true
          run_as_user     = 1000 # triton-server in the NGC image
          run_as_group    = 1000
          fs_group        = 1000
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        toleration {
          key      = "nvidia.com/gpu"
          operator = "Exists"
          effect   = "NoSchedule"
        }
        init_container {
          name              = "models"
          image             = "${var.images["zongzhi-models"].repository}@${var.images["zongzhi-models"].digest}"
          image_pull_policy = "Always"
          command           = ["cp", "-R", "/models/.", "/repository/"]
          resources {
            requests = { cpu = "100m", memory = "64Mi" }
            limits   = { cpu = "500m", memory = "256Mi" }
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            privileged                 = false
            capabilities {
              drop = ["ALL"]
            }
          }
          volume_mount {
            name       = "repository"
            mount_path = "/repository"
          }
        }
        container {
          name              = "triton"
          image             = "${var.images["triton"].repository}@${var.images["triton"].digest}"
          image_pull_policy = "Always"
          command           = ["tritonserver"]
          args = ["--model-repository=/repository", "--model-control-mode=none",
          "--strict-readiness=true", "--exit-on-error=true", "--allow-metrics=true"]
          port {
            name           = "http"
            container_port = 8000
          }
          port {
            name           = "grpc"
            container_port = 8001
          }
          port {
            name           = "metrics"
            container_port = 8002
          }
          resources {
            requests = { cpu = var.triton.cpu, memory = var.triton.memory, "nvidia.com/gpu" = tostring(var.triton.gpus_per_pod) }
            limits   = { cpu = var.triton.cpu, memory = var.triton.memory, "nvidia.com/gpu" = tostring(var.triton.gpus_per_pod) }
          }
          liveness_probe {
            http_get {
              path = "/v2/health/live"
              port = 8000
            }
            initial_delay_seconds = 30
            period_seconds        = 10
          }
          readiness_probe {
            http_get {
              path = "/v2/health/ready" # every model of the repository loaded
              port = 8000
            }
            period_seconds = 5
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            privileged                 = false
            capabilities {
              drop = ["ALL"]
            }
          }
          volume_mount {
            name       = "repository"
            mount_path = "/repository"
            read_only  = true
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
          volume_mount {
            name       = "shm"
            mount_path = "/dev/shm"
          }
        }
        volume {
          name = "repository"
          empty_dir {
            size_limit = "4Gi"
          }
        }
        volume {
          name = "tmp"
          empty_dir {
            size_limit = "1Gi"
          }
        }
        volume {
          name = "shm"
          empty_dir {
            medium     = "Memory"
            size_limit = "1Gi"
          }
        }
      }
    }
  }
}

resource "kubernetes_service_v1" "triton" {
  metadata {
    name      = "triton"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.triton_labels
  }
  spec {
    selector = { "app.kubernetes.io/name" = "triton" }
    port {
      name        = "grpc"
      port        = 8001
      target_port = 8001
    }
    port {
      name        = "metrics"
      port        = 8002
      target_port = 8002
    }
  }
}

resource "kubernetes_pod_disruption_budget_v1" "triton" {
  metadata {
    name      = "triton"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.triton_labels
  }
  spec {
    max_unavailable = "1" # the vision workers drop and count frames while one is away
    selector {
      match_labels = { "app.kubernetes.io/name" = "triton" }
    }
  }
}

resource "kubernetes_network_policy_v1" "triton" {
  metadata {
    name      = "triton"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.triton_labels
  }
  spec {
    pod_selector {
      match_labels = { "app.kubernetes.io/name" = "triton" }
    }
    policy_types = ["Ingress", "Egress"] # no egress at all: models come from the image
    ingress {
      from {
        pod_selector {
          match_labels = { "app.kubernetes.io/component" = "vision-worker" }
        }
      }
      ports {
        port     = "8001"
        protocol = "TCP"
      }
    }
    ingress {
      from {
        pod_selector {
          match_labels = { "app.kubernetes.io/name" = "otel-collector" }
        }
      }
      ports {
        port     = "8002"
        protocol = "TCP"
      }
    }
  }
}
