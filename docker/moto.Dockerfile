# The AWS stand-in of the local stack: moto in server mode, the version the tests use.
FROM python:3.11-slim

RUN pip install --no-cache-dir "moto[server]==5.2.5"

EXPOSE 5000
ENTRYPOINT ["moto_server", "--host", "0.0.0.0", "--port", "5000"]
