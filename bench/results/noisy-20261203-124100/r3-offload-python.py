Running 12s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    97.24ms   54.88ms 392.32ms   78.06%
    Req/Sec   169.66     54.86   313.00     75.00%
  2031 requests in 12.02s, 444.43KB read
Requests/sec:    169.03
Transfer/sec:     36.99KB
