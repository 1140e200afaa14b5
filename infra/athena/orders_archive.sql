-- The order archive as an Athena table: gzip-compressed JSON lines under
-- s3://<DataBucketName>/archive/orders/year=YYYY/month=MM/ (shared/src/archive.rs),
-- one stored order per line. Partitions are projected, so no MSCK REPAIR is
-- needed as months are added. Replace <DataBucketName> with the stack output.
CREATE EXTERNAL TABLE IF NOT EXISTS marketplace_orders_archive (
  id string,
  checkoutid string,
  customerid string,
  farmerid string,
  lines array<struct<productid:string, name:string, unit:string, unitprice:bigint, quantity:bigint, linetotal:bigint>>,
  total bigint,
  fulfilment struct<method:string, address:struct<line1:string, line2:string, postalcode:string, town:string>>,
  status string,
  history array<struct<status:string, at:string, by:string, reason:string>>,
  payment struct<method:string, status:string>,
  createdat string,
  updatedat string,
  version bigint
)
PARTITIONED BY (year string, month string)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'false')
LOCATION 's3://<DataBucketName>/archive/orders/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.year.type' = 'integer',
  'projection.year.range' = '2024,2100',
  'projection.month.type' = 'integer',
  'projection.month.range' = '1,12',
  'projection.month.digits' = '2',
  'storage.location.template' = 's3://<DataBucketName>/archive/orders/year=${year}/month=${month}/'
);

-- Example: a farmer's archived revenue per month in 2025.
-- SELECT month, count(*) AS orders, sum(total) / 100.0 AS revenue
-- FROM marketplace_orders_archive
-- WHERE year = '2025' AND farmerid = '01J...' AND status = 'delivered'
-- GROUP BY month ORDER BY month;
