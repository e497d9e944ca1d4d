Running 10s test @ http://127.0.0.1:18204/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   229.06ms  233.76ms   1.18s    81.62%
    Req/Sec    93.02    123.78   373.00     80.00%
  928 requests in 10.01s, 198.97KB read
Requests/sec:     92.73
Transfer/sec:     19.88KB
