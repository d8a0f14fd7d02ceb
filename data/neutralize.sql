-- A copied database (staging, test) must never report tracking to the real Crux.
UPDATE res_company
   SET crux_api_token = NULL,
       crux_auto_send = FALSE;
UPDATE ir_cron
   SET active = FALSE
 WHERE id IN (SELECT res_id FROM ir_model_data
               WHERE module = 'crux_tracking' AND model = 'ir.cron');
