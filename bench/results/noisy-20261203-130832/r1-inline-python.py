Running 12s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    65.41ms   24.42ms 169.99ms   81.25%
    Req/Sec   245.52     38.51   353.00     72.50%
  2938 requests in 12.02s, 642.69KB read
Requests/sec:    244.45
Transfer/sec:     53.47KB
