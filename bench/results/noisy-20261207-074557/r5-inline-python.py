Running 10s test @ http://127.0.0.1:18202/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    41.72ms   11.14ms  78.05ms   67.62%
    Req/Sec   385.03     51.50   490.00     61.00%
  3833 requests in 10.01s, 768.02KB read
Requests/sec:    383.08
Transfer/sec:     76.76KB
