Running 10s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   101.31ms  240.98ms   1.97s    93.87%
    Req/Sec   195.38    179.88   400.00     35.14%
  743 requests in 10.01s, 162.55KB read
  Socket errors: connect 0, read 0, write 0, timeout 33
Requests/sec:     74.23
Transfer/sec:     16.24KB
