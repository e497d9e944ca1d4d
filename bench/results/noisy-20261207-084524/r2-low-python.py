Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   230.77ms  244.82ms   1.60s    83.14%
    Req/Sec    97.29    135.15   404.00     79.80%
  964 requests in 10.01s, 207.13KB read
Requests/sec:     96.29
Transfer/sec:     20.69KB
