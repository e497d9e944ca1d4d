Running 12s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    93.34ms   47.12ms 327.86ms   76.42%
    Req/Sec   174.48     38.49   292.00     71.67%
  2092 requests in 12.03s, 457.77KB read
Requests/sec:    173.91
Transfer/sec:     38.05KB
