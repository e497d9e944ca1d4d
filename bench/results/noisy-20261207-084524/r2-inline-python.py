Running 10s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    40.24ms   10.48ms  81.65ms   70.11%
    Req/Sec   399.06     47.93   490.00     66.00%
  3974 requests in 10.01s, 796.41KB read
Requests/sec:    397.18
Transfer/sec:     79.60KB
