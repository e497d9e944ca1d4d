Running 12s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   283.91ms  281.88ms   1.56s    81.75%
    Req/Sec    73.71    102.42   343.00     82.91%
  865 requests in 12.00s, 184.69KB read
Requests/sec:     72.05
Transfer/sec:     15.38KB
