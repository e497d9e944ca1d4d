Running 10s test @ http://127.0.0.1:18203/py/x
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    68.35ms  167.71ms   1.87s    96.90%
    Req/Sec   239.69    186.25   410.00     62.50%
  775 requests in 10.01s, 169.38KB read
  Socket errors: connect 0, read 0, write 0, timeout 22
Requests/sec:     77.41
Transfer/sec:     16.92KB
