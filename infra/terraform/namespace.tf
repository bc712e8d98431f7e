resource "kubernetes_namespace_v1" "zongzhi" {
  metadata {
    name = var.namespace
    labels = merge(local.labels, {
      "pod-security.kubernetes.io/enforce" = "restricted"
      "pod-security.kubernetes.io/audit"   = "restricted"
    })
  }
}

# Nothing talks to anything unless a policy below (or in a module) allows that flow.
resource "kubernetes_network_policy_v1" "default_deny" {
  metadata {
    name      = "default-deny"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.labels
  }
  spec {
    pod_selector {}
    policy_types = ["Ingress", "Egress"]
  }
}

# Every pod may resolve names.
resource "kubernetes_network_policy_v1" "dns" {
  metadata {
    name      = "dns"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.labels
  }
  spec {
    pod_selector {}
    policy_types = ["Egress"]
    egress {
      to {
        namespace_selector {
          match_labels = { "kubernetes.io/metadata.name" = "kube-system" }
        }
        pod_selector {
          match_labels = { "k8s-app" = "kube-dns" }
        }
      }
      ports {
        port     = "53"
        protocol = "UDP"
      }
      ports {
        port     = "53"
        protocol = "TCP"
      }
    }
  }
}

resource "kubernetes_resource_quota_v1" "zongzhi" {
  metadata {
    name      = "zongzhi"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.labels
  }
  spec {
    hard = {
      "requests.nvidia.com/gpu" = tostring(var.triton.replicas * var.triton.gpus_per_pod)
      "persistentvolumeclaims"  = tostring(2 + var.citus.workers + var.nats.replicas + 4)
    }
  }
}

resource "kubernetes_limit_range_v1" "zongzhi" {
  metadata {
    name      = "zongzhi"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.labels
  }
  spec {
    limit {
      type            = "Container"
      default         = { cpu = "500m", memory = "512Mi" }
      default_request = { cpu = "100m", memory = "128Mi" }
    }
  }
}
