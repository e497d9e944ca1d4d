# Breakwater on Nomad: a system job, one edge node per client machine. The config is
# rendered from a template (here from Consul's catalogue of origin instances) and a change
# sends SIGHUP, which reloads it without dropping a request (an invalid config is refused
# and the running one keeps serving).
#   nomad job run deploy/nomad/breakwater.nomad.hcl
#   nomad job run -var redis=redis://redis.service.consul:6379/0 deploy/nomad/breakwater.nomad.hcl
# With `redis` set, the nodes form a fleet on that existing Redis (purges reach every node).

variable "redis" {
  type        = string
  default     = ""
  description = "An existing Redis the nodes share (redis://HOST:PORT/DB); empty: no fleet"
}

job "breakwater" {
  type = "system"

  group "edge" {
    network {
      port "http"  { static = 80 }
      port "admin" { static = 9901 }
    }

    service {
      name = "breakwater"
      port = "http"
      check {
        type     = "http"
        port     = "admin"
        path     = "/readyz"
        interval = "5s"
        timeout  = "2s"
      }
      meta { metrics_path = "/metrics" }
    }

    task "breakwater" {
      driver = "exec"

      config {
        command = "/usr/local/bin/breakwater"
        args    = ["run", "--config", "${NOMAD_TASK_DIR}/breakwater.yaml"]
      }

      template {
        destination   = "local/breakwater.yaml"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<-YAML
          listeners:
            - { name: web, address: "0.0.0.0:{{ env "NOMAD_PORT_http" }}", h2c: true }
          admin: { address: "{{ env "NOMAD_IP_admin" }}:{{ env "NOMAD_PORT_admin" }}" }
          pools:
            origin:
              endpoints: [{{ range $i, $s := service "origin" }}{{ if $i }}, {{ end }}"{{ $s.Address }}:{{ $s.Port }}"{{ end }}]
              health_check: { path: /healthz, interval: 5s }
          routes:
            - { pool: origin, cache: {} }
          %{ if var.redis != "" }fleet: { redis: "${var.redis}" }%{ endif }
        YAML
      }

      kill_signal  = "SIGTERM"
      kill_timeout = "20s"

      resources {
        cpu    = 1000
        memory = 512
      }
    }
  }
}
