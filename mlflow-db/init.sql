-- Roles and databases of the stack; run once by initdb/10-mlstack.sh with psql variables
-- mlflow_password and predictions_password (quoted with :'var', so any password is safe).
\set ON_ERROR_STOP on

CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;

CREATE ROLE predictions LOGIN PASSWORD :'predictions_password';
CREATE DATABASE predictions OWNER predictions;
REVOKE ALL ON DATABASE predictions FROM PUBLIC;
