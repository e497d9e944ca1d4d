Running 12s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    48.74ms   13.97ms 101.50ms   67.98%
    Req/Sec   328.52     56.10   444.00     65.83%
  3930 requests in 12.02s, 787.85KB read
Requests/sec:    327.08
Transfer/sec:     65.57KB
