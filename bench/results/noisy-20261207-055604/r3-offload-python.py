Running 12s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   268.23ms  259.55ms   1.27s    74.60%
    Req/Sec    76.12     99.81   333.00     82.91%
  893 requests in 12.00s, 190.54KB read
Requests/sec:     74.39
Transfer/sec:     15.87KB
